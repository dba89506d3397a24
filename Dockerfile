# rawpost image: `rawpost serve` (the default) or `rawpost migrate apply`.
# Meant to run against DATABASE_URL; see docker-compose.yml and docs/operations.md.

# --- builder: resolve the locked dependencies into /app/.venv -----------------------
FROM python:3.11-slim AS builder

RUN pip install --no-cache-dir uv

ENV UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself. uv installs it editable, pointing at /app: service/config.py
# finds sql/ and migrations/ next to the package, so the source must stay at /app.
COPY README.md ./
COPY service ./service
COPY sql ./sql
COPY migrations ./migrations
RUN uv sync --frozen --no-dev

# --- runtime: the venv and the source, no uv, no build tools ------------------------
FROM python:3.11-slim AS runtime

RUN groupadd --system rawpost \
    && useradd --system --gid rawpost --home-dir /app --no-create-home rawpost

WORKDIR /app

COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/pyproject.toml /app/README.md ./
COPY --from=builder /app/service ./service
COPY --from=builder /app/sql ./sql
COPY --from=builder /app/migrations ./migrations

# Only used when DATABASE_URL is unset (the embedded PostgreSQL's data folder).
RUN mkdir -p /app/.rawpost && chown rawpost:rawpost /app/.rawpost

ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER rawpost

EXPOSE 8000

# Exec form, so `docker stop`'s SIGTERM reaches rawpost (granian shuts down gracefully).
# tests/test_deploy.py runs this command (and the compose services' commands) outside
# Docker against a real PostgreSQL; keep it in step with docker-compose.yml's api.
CMD ["rawpost", "serve", "--host", "0.0.0.0"]

# rawpost image: `rawpost serve` (the default) or `rawpost migrate apply`.
# Meant to run against DATABASE_URL; see docker-compose.yml and docs/deploy.md.

# --- builder: the locked dependencies and the rawpost wheel, installed into /app/.venv ---
FROM python:3.11-slim AS builder

RUN pip install --no-cache-dir uv

ENV UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when the lock changes. Production
# dependencies only: no dev group (and so no devtools, no embedded PostgreSQL).
COPY pyproject.toml uv.lock README.md ./
COPY devtools/pyproject.toml ./devtools/
RUN uv export --frozen --no-dev --no-emit-project --no-emit-workspace -o requirements.txt \
    && uv venv /app/.venv \
    && uv pip install --python /app/.venv/bin/python -r requirements.txt

# Then the wheel: the service package with sql/ and migrations/ inside it (service/_data),
# so the image holds no source tree.
COPY service ./service
COPY sql ./sql
COPY migrations ./migrations
RUN uv build --wheel -o /dist \
    && uv pip install --python /app/.venv/bin/python --no-deps /dist/*.whl

# --- runtime: the venv only, no uv, no build tools, no source --------------------------
FROM python:3.11-slim AS runtime

RUN groupadd --system rawpost \
    && useradd --system --gid rawpost --home-dir /app --no-create-home rawpost

WORKDIR /app

COPY --from=builder /app/.venv /app/.venv

# Rehearsal records (`rawpost migrate apply` reads them) and the like: .rawpost/.
RUN mkdir -p /app/.rawpost && chown rawpost:rawpost /app/.rawpost

ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER rawpost

EXPOSE 8000

# Exec form, so `docker stop`'s SIGTERM reaches rawpost (granian shuts down gracefully).
# tests/system/test_container_commands.py runs this command (and the compose services'
# commands) outside Docker against a real PostgreSQL; keep it in step with the compose api.
CMD ["rawpost", "serve", "--host", "0.0.0.0"]

# imunban worker image: `docker compose up` uses it for the worker (and the dev-profile simulator).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY tasks ./tasks
RUN pip install . && rm -rf /src

# Never run as root: Celery warns about it, and a worker needs no privilege.
RUN useradd --system --uid 10001 --create-home --home-dir /home/imunban imunban
USER imunban
WORKDIR /home/imunban

ENTRYPOINT ["imunban"]
CMD ["worker"]

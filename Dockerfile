# imunban image: `docker compose up` uses it for the worker, the console, the exporter and the dev-profile simulator.
# Pinned: the base image's exact Python and Debian release, and every dependency's version (constraints.txt,
# generated from pyproject.toml; tests/repo/test_constraints.py checks that it is current).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY worker ./worker
COPY tasks ./tasks
RUN pip install --constraint constraints.txt . && rm -rf /src

# Never run as root: Celery warns about it, and a worker needs no privilege. The user is numeric (Kubernetes'
# runAsNonRoot can only verify a number), with a passwd entry of the same uid and gid for tools that look it up.
RUN groupadd --system --gid 10001 imunban \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/imunban imunban
USER 10001:10001
WORKDIR /home/imunban

ENTRYPOINT ["imunban"]
CMD ["worker"]

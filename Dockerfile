# Siyu: `docker build -t siyu .`; `docker run -p 8000:8000 siyu` serves the embedded mode (SQLite in /app/var,
# jobs in-process, the sandbox for every channel without credentials). compose.yaml runs the Redis mode.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --create-home --uid 10001 --user-group siyu

WORKDIR /app
COPY . /src
RUN pip install /src && rm -rf /src

# var/ (database of the embedded mode, generated keys) and the metrics directory belong to the service user;
# a named volume mounted on either starts with this ownership.
RUN mkdir -p /app/var /var/lib/siyu/metrics \
    && chown -R siyu:siyu /app /var/lib/siyu \
    && chmod 0700 /app/var /var/lib/siyu/metrics
USER siyu
ENV SIYU_VAR_DIR=/app/var \
    PROMETHEUS_MULTIPROC_DIR=/var/lib/siyu/metrics

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["siyu", "serve", "--host", "0.0.0.0"]

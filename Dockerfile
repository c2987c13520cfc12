# One image for every process: web (gunicorn), worker and beat (celery), flower.
FROM python:3.11-slim

# PROMETHEUS_MULTIPROC_DIR: each container counts in its own directory (a tmpfs in docker-compose.yml);
# see verification/metrics.py.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROMETHEUS_MULTIPROC_DIR=/run/prometheus

RUN useradd --create-home --uid 10001 app \
 && mkdir -p /app /data /run/prometheus \
 && chown app:app /data /run/prometheus
WORKDIR /app

# Installed from pyproject.toml as CI installs it (`pip install .`), so the image runs exactly the
# dependency ranges the tests ran against.
COPY pyproject.toml README.md ./
COPY verification ./verification
COPY tasks.py web.py celeryconfig.py gunicorn.conf.py ./
RUN pip install --upgrade pip && pip install . && pip check

USER app
EXPOSE 8000 5555 9808
# docker-compose.yml sets each service's command; alone, the image serves the web app.
CMD ["gunicorn", "web:app"]

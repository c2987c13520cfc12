# One image for every process: web (gunicorn), worker and beat (celery), flower.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# /data: Flower's state (a volume in docker-compose.yml).
RUN useradd --create-home --uid 10001 app \
 && mkdir -p /app /data \
 && chown app:app /data
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

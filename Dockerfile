FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
# torch==2.13.0 from the CPU index keeps the image free of CUDA packages.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
COPY . .
RUN DJANGO_DEBUG=true python manage.py collectstatic --noinput
EXPOSE 8000
# Workers default to one per core (WEB_CONCURRENCY overrides): requests are CPU-bound
# (bench/queue_http.py: 2 workers on 2 cores had a lower p95 and more throughput than 4).
CMD ["sh", "-c", "gunicorn annotate.wsgi --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-$(nproc)}"]

# The loyalty command: `docker run IMAGE worker --broker kafka://kafka:9092`.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Copy only what the wheel needs, so a local .venv never reaches the image.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY projections ./projections
COPY streams ./streams
COPY tools ./tools
COPY bench ./bench
RUN pip install . && rm -rf /src

# RocksDB tables live in the working directory; compose mounts a volume here.
RUN useradd --system --create-home --home-dir /var/lib/loyalty loyalty
ENV LOYALTY_DATA_DIR=/var/lib/loyalty
WORKDIR /var/lib/loyalty
USER loyalty

EXPOSE 6066
ENTRYPOINT ["loyalty"]
CMD ["--help"]

# A small kascan image: python slim + git. Build from the top of the repository:
#   docker build -t kascan .
#   docker run --rm -v "$PWD:/work" kascan scan .
FROM python:3.12-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md CHANGELOG.md /src/
COPY kascan /src/kascan
COPY rules /src/rules
RUN pip install --no-cache-dir /src && rm -rf /src \
    && useradd --create-home --uid 10001 kascan

USER 10001
WORKDIR /work
ENV PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["kascan"]
CMD ["--help"]

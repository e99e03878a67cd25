# A small kascan image: python slim + git. Build from the top of the repository:
#   docker build -t kascan .
#   docker run --rm -v "$PWD:/work" kascan scan .
#   docker run --rm -v "$PWD:/work" kascan git .
FROM python:3.12-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md CHANGELOG.md /src/
COPY kascan /src/kascan
COPY rules /src/rules
RUN pip install --no-cache-dir /src && rm -rf /src \
    && useradd --create-home --uid 10001 kascan

# A repository mounted at /work belongs to the host's user, not to uid 10001, and git refuses
# such a repository ("detected dubious ownership"). Trust the mount point, and (git >= 2.46)
# any repository under it. This is safe for kascan: it runs git with the scanned repository's
# hooks, fsmonitor, external diff and pager switched off (kascan/sources/git.py SAFE_CONFIG).
# Elsewhere, run the container as the repository's owner: docker run --user "$(id -u):$(id -g)".
RUN git config --system --add safe.directory /work \
    && git config --system --add safe.directory '/work/*'

USER 10001
WORKDIR /work
ENV PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["kascan"]
CMD ["--help"]

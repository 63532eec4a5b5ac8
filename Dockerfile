# syntax=docker/dockerfile:1
# The `weft` image: one binary for every role (controller, ingress, dispatcher, up, …).
#   docker build -t REGISTRY/weft:TAG .
# Kubernetes manifests: config/deploy/ (they name the placeholder ghcr.io/weft-dev/weft).

# ---- build -------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
# cmake builds the librdkafka bundled with rdkafka (the `kafka` feature). Weft enables none
# of rdkafka's optional features, so librdkafka is built without libcurl, OpenSSL, SASL,
# zlib and zstd, and the binary links only glibc, libm and libgcc_s.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The caches speed up rebuilds; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin weft \
 && cp target/release/weft /usr/local/bin/weft

# ---- runtime -----------------------------------------------------------------------------
# distroless/cc: glibc, libgcc_s, CA certificates, tzdata; no shell. Same Debian release
# (12, glibc 2.36) as the build stage. Its `nonroot` user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/weft /usr/local/bin/weft
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/weft"]
CMD ["--help"]

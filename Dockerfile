# syntax=docker/dockerfile:1
# The `weft` image: one binary for every role (controller, ingress, dispatcher, up, …).
#   docker build -t REGISTRY/weft:TAG .
# Kubernetes manifests: config/deploy/ (they name the placeholder ghcr.io/weft-dev/weft).

# ---- build -------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
# The librdkafka bundled with rdkafka (the `kafka` feature) builds with its own ./configure
# and make. Weft enables none of rdkafka's optional features, so librdkafka is built without
# libcurl, OpenSSL, SASL, zlib and zstd, and the binary links only glibc, libm and libgcc_s;
# the image's compiler, make and Python 3 are all the build needs.
WORKDIR /src
COPY . .
# The fully optimised build (`dist`: fat LTO, one codegen unit; several minutes longer than
# `--release`). The caches speed up rebuilds; the binary is copied out of the cached target
# directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --bin weft \
 && cp target/dist/weft /usr/local/bin/weft

# ---- runtime -----------------------------------------------------------------------------
# distroless/cc: glibc, libgcc_s, CA certificates, tzdata; no shell. Same Debian release
# (12, glibc 2.36) as the build stage. Its `nonroot` user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/weft /usr/local/bin/weft
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/weft"]
CMD ["--help"]

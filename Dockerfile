# syntax=docker/dockerfile:1
#
# siaga's container image: a release build in the Rust image, copied into a slim Debian
# runtime that holds the binary, its default configuration and nothing else it does not
# need. Build it from the repository root (docker-compose.yml does):
#
#   docker build -t siaga .
#
# The image runs `siaga run --config /etc/siaga/siaga.toml` as the unprivileged user
# `siaga`, in /var/lib/siaga (a volume: a SQLite database, the store's journal). Mount
# your own configuration over /etc/siaga/siaga.toml; SIAGA_DATABASE_URL,
# SIAGA_SIP_LISTEN, SIAGA_RTP_PORTS and SIAGA_HTTP_LISTEN override its keys.

# ---- build ------------------------------------------------------------------------------
# The toolchain the project is built and tested with (Cargo.toml's rust-version is the
# floor), on the same Debian release as the runtime so the glibc the binary links against
# is the one it runs with.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
# What `cargo build --release --bin siaga` reads: the manifest and lock file, the build
# script, the sources, the migrations compiled into the binary, and the bench and example
# targets Cargo.toml declares (cargo checks they exist). .dockerignore keeps target/ out.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY examples ./examples
# The registry and target directories are BuildKit caches, so a rebuild after a source
# change recompiles siaga only. The cached target/ is not part of the image: the binary
# is copied out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin siaga \
    && install -m 0755 target/release/siaga /usr/local/bin/siaga

# ---- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# The binary links only glibc, libm and libgcc_s (all in the base image). ca-certificates
# is for TLS to a PostgreSQL elsewhere (sslmode=verify-full); nothing else is installed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A system user without a login shell; its home is the data directory.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/siaga \
        --shell /usr/sbin/nologin siaga \
    && install -d -o siaga -g siaga -m 0750 /var/lib/siaga \
    && install -d -m 0755 /etc/siaga
COPY --from=builder /usr/local/bin/siaga /usr/local/bin/siaga
# The documented default configuration; replace it with a bind mount.
COPY config/siaga.toml /etc/siaga/siaga.toml
USER siaga
# A relative sqlite://data/siaga.db resolves here, inside the volume.
WORKDIR /var/lib/siaga
VOLUME ["/var/lib/siaga"]
# Documentation only (docker-compose.yml uses host networking): SIP over UDP and TCP, the
# default RTP range, the HTTP API.
EXPOSE 5060/udp 5060/tcp 30000-30999/udp 8080/tcp
# siaga stops gracefully on SIGTERM: live calls are ended (BYE, recorded `interrupted`)
# and every call event is stored before it exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/siaga"]
CMD ["run", "--config", "/etc/siaga/siaga.toml"]

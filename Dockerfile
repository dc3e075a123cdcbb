# dockmaster as a container: `dockmaster serve` (chat, schedules, hooks,
# option lists, metrics) driving the host's Docker engine.
#
#   docker build -t dockmaster .
#   docker run -d --name dockmaster -p 8080:8080 \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /etc/dockmaster:/etc/dockmaster:ro -v dockmaster-state:/var/lib/dockmaster \
#     -e DOCKMASTER_CONFIG=/etc/dockmaster/dockmaster.yaml dockmaster
#
# Mounting the engine's socket gives this container full control of the
# host's engine (it can start privileged containers): see docs/service.md.
#
# RUST_IMAGE and RUNTIME_IMAGE can point at local images where no registry
# can be reached; a binary at prebuilt/dockmaster in the build context is
# used instead of compiling (CI builds it once, outside the image).
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN if [ -x prebuilt/dockmaster ]; then cp prebuilt/dockmaster /dockmaster; \
    else cargo build --release --locked && cp target/release/dockmaster /dockmaster; fi

FROM ${RUNTIME_IMAGE}
# CA certificates for LDAPS, chat platforms and webhooks.
RUN if command -v apt-get >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && mkdir -p /var/lib/dockmaster /etc/dockmaster \
    && chown 10001:10001 /var/lib/dockmaster
COPY --from=build /dockmaster /usr/local/bin/dockmaster
# Not root: the engine socket is reached through --group-add.
USER 10001:10001
ENV DOCKMASTER_LISTEN=0.0.0.0:8080 \
    XDG_STATE_HOME=/var/lib
VOLUME ["/var/lib/dockmaster"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["dockmaster", "healthcheck"]
ENTRYPOINT ["dockmaster"]
CMD ["serve"]

# A two-stage build: the first stage writes a file, the second copies it.
ARG BASE_IMAGE=busybox:1.36
ARG VERSION

FROM ${BASE_IMAGE} AS builder
ARG VERSION=0.1
WORKDIR /src
RUN echo "version ${VERSION}" > /src/version.txt && \
    mkdir -p /out && cp /src/version.txt /out/
FROM --platform=linux/amd64 ${BASE_IMAGE} as final
COPY --from=builder --chown=1000:1000 /out/version.txt /app/version.txt
ENV APP_HOME=/app PATH=/app/bin:$PATH
WORKDIR $APP_HOME
USER 1000:1000
LABEL org.example.name="dockyard test" org.example.version=${VERSION}
EXPOSE 8080 9090/udp
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/version.txt"]

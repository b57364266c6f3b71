FROM --platform=$BUILDPLATFORM busybox AS base
COPY --from=base --chown=root:root --chmod=755 --link a b /dst/
ADD --chown="1:1" --keep-git-dir=true https://example.invalid/x.git /src
RUN --mount=type=cache,target=/root/.cache --mount=type=bind,source=.,target=/ctx --network=none echo flags
RUN --network=host -- echo after double dash
COPY --exclude=*.tmp --exclude=*.log . /app
RUN --security=insecure echo x
COPY --from='quoted stage' x y
COPY -- -dash-file /dest

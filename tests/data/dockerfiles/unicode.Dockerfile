FROM busybox
LABEL description="café ☕ naïve" 名前=値
ENV GREETING=안녕하세요
RUN echo "ünïcödé"

FROM busybox
RUN ["echo", "exec form"]
RUN [ "sh", "-c", "echo spaced json" ]
CMD ["echo", "unicode \u00e9 and \"quotes\""]
ENTRYPOINT ["/bin/sh"]
SHELL ["/bin/sh", "-euc"]
RUN [not json, falls back to shell]
CMD ['single', 'quotes']
ENTRYPOINT ["unterminated"
CMD []
VOLUME ["/data", "/logs"]
VOLUME /a /b   /c

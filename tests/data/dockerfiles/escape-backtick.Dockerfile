# escape=`
FROM busybox
RUN echo C:\windows\path `
    && echo continued
COPY a\b.txt `
     /dest/
ENV WINPATH=C:\Users\me

FROM busybox
ENV A=1
ENV B=2 C=3 D="four five" E='six seven' F=eight\ nine
ENV LEGACY value with   spaces
ENV EMPTY= OTHER=""
ENV QUOTED_KEY"=x" y=z
LABEL maintainer="someone@example.invalid"
LABEL "com.example.quoted key"="value" multi.line="one \
two"
LABEL legacy-label some value
ARG NAME
ARG WITH_DEFAULT=default value
ARG A1=1 A2 A3="three"

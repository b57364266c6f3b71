FROM busybox
RUN set -e; \
    echo one; \
# a comment inside a continuation is dropped
    echo two; \

    echo three
RUN echo "trailing blanks after the backslash" \   
    done
RUN echo a \\
RUN echo escaped-backslash-at-end \\ 
RUN \
  echo started-on-next-line
   RUN    echo   indented   instruction   

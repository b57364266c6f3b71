FROM busybox
RUN <<EOF
echo first heredoc
echo $HOME
EOF
RUN <<-EOT
	echo tabs are stripped
		echo two tabs
	EOT
RUN <<"QUOTED"
echo $NOT_EXPANDED
QUOTED
RUN <<'SINGLE' cat > /x
literal $VAR
SINGLE
RUN <<ONE <<TWO
first
ONE
second
TWO
RUN 3<<FD cat /proc/self/fd/3
fd three
FD
COPY <<EOF /etc/motd
welcome
EOF
COPY --chmod=0644 <<A <<B /dest/
a
A
b
B
ADD <<EOF /added.txt
added
EOF
RUN cat <<EOF | sh
echo piped
EOF
RUN ["echo", "<<NOTHEREDOC"]
RUN echo "<<not-a-heredoc-in-quotes"
RUN <<E"O"F
partly quoted
EOF

FROM busybox
ARG NAME=world
COPY hello.txt /hello.txt
COPY raw.txt /raw.txt
COPY --chmod=755 run.sh /run.sh

FROM busybox
ENV V=dir/sub/file.tar.gz
ENV A=sub/file.tar.gz B=file.tar.gz C=dir/sub/file.tar D=dir/sub/file E=dir/SUB/file.tar.gz F=dir/Sub/file.tar.gz
RUN echo "$A $B $C $D $E $F" > /mods

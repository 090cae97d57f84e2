FROM busybox
RUN echo one > /one && echo two > /two
RUN echo tabbed > /tabbed
RUN echo 'fed line' > /fed

# haflow-local/zookeeper: Debian's ZooKeeper 3.8, standing in for the zookeeper:3.8 image with
# the same interface: the configuration at /conf/zoo.cfg, the member id from $ZOO_MY_ID written
# to $ZOO_DATA_DIR/myid on first start, and `zkServer.sh status` as its health check.
ARG BASE=haflow-local/base
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends zookeeper default-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /var/lib/zookeeper /etc/zookeeper/conf/myid \
 && install -d -o zookeeper -g zookeeper /var/lib/zookeeper /conf \
 && ln -sf /conf/zoo.cfg /etc/zookeeper/conf/zoo.cfg
COPY zookeeper-entrypoint /usr/local/bin/
COPY log4j.properties /etc/zookeeper/conf/log4j.properties
ENV PATH=/usr/share/zookeeper/bin:$PATH ZOO_DATA_DIR=/var/lib/zookeeper ZOO_MY_ID=1
USER zookeeper
EXPOSE 2181 2888 3888
CMD ["zookeeper-entrypoint"]

"""``ubernetes up``: the local federation launcher, its topology, its fault API and local etcd members."""

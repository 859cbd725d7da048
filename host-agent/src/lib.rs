//! Berth's host agent: registers a host with a cluster, heartbeats, takes
//! assignments and runs them through containerd. It is built by the
//! placement-and-agents and containerd issues; nothing lives here yet.

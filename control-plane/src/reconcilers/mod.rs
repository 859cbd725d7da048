//! Reconcilers: small loops that compare desired and observed state and act,
//! in the style of kube-rs controllers. Each decision is a pure function
//! (see [`service_plan`]); the loops only read, decide and write.

pub mod service_plan;
pub mod services;

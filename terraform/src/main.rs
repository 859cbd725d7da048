//! `terraform-provider-berth`: the Terraform provider for Berth (plugin
//! protocol 6, through the `tf-provider` crate), on the Berth SDK.
//!
//! tf-provider is close to the raw protocol: defaults, "use state for
//! unknown" and "requires replace" are code in each resource's plan
//! functions, with the helpers in [`util`].

mod access_key;
mod account;
mod cluster;
mod data;
mod provider;
mod registration_token;
mod service;
mod task_definition;
mod util;

fn main() -> anyhow::Result<()> {
    // tf-provider puts a captured backtrace under every diagnostic, and
    // Terraform passes RUST_BACKTRACE through: users would see a stack trace
    // under every error. Turn the library's backtraces off by running again
    // with RUST_LIB_BACKTRACE=0 (exec keeps the pid and the pipes Terraform reads).
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none_or(|v| v != "0") {
        use std::os::unix::process::CommandExt as _;
        let exe = std::env::current_exe()?;
        let err =
            std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("RUST_LIB_BACKTRACE", "0").exec();
        return Err(err.into());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(tf_provider::serve("berth", provider::BerthProvider::default()))
}

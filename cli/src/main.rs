//! `berth`: the one binary. `berth server` runs the control plane, `berth dev`
//! runs everything on one machine, and the client commands talk to an API.

mod client;
mod commands;
mod credentials;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The server and the agents allocate on every request from both of tokio's
/// worker threads; glibc's allocator spent about a quarter of the server's CPU
/// in the end-to-end RunTask benchmark (BENCHMARKS.md), mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "berth", version, about = "Berth: a self-hostable container orchestration control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (HTTP API) against PostgreSQL or SQLite.
    Server(commands::server::ServerArgs),
    /// Run a control plane on embedded SQLite for local use, with a dev account ready.
    Dev(commands::dev::DevArgs),
    /// Run a host agent that joins a cluster.
    Agent(commands::agent::AgentArgs),
    /// Print the OpenAPI document of the API this build serves.
    Openapi,
    /// The container logger containerd's shim runs for the agent (not for people).
    #[command(hide = true)]
    LogDriver {
        /// `max_bytes:keep:path`.
        spec: String,
    },
    /// Print shell completions: `berth completions bash > /etc/bash_completion.d/berth`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Client(client::Command),
    /// Print a new random master key (`id:base64key`) for BERTH_MASTER_KEYS or a key file.
    GenerateMasterKey {
        /// The key's id; name keys so rotations can be told apart [default: a date-based id].
        #[arg(long)]
        id: Option<String>,
    },
}

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process (ring; no C build, no OpenSSL).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // The logger runs once per container: plain threads, no async runtime.
    if let Command::LogDriver { spec } = &cli.command {
        let Some(spec) = berth_host_agent::logs::DriverSpec::decode(spec) else {
            eprintln!("berth log-driver: {spec:?} is not max_bytes:keep:/absolute/path");
            return ExitCode::from(2);
        };
        return match berth_host_agent::logs::run_driver(&spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth log-driver: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Completions { shell } = &cli.command {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(*shell, &mut cmd, "berth", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = match cli.command {
        Command::Client(c) => return runtime.block_on(client::run(c)),
        other => other,
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Server(args) => commands::server::run(args).await,
            Command::Dev(args) => commands::dev::run(args).await,
            Command::Agent(args) => commands::agent::run(args).await,
            Command::Openapi => commands::openapi(),
            Command::LogDriver { .. } | Command::Completions { .. } | Command::Client(_) => Ok(()),
            Command::GenerateMasterKey { id } => {
                let now = time::OffsetDateTime::now_utc();
                let id =
                    id.unwrap_or_else(|| format!("k{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day()));
                println!("{}", berth_control_plane::auth::keyring::Keyring::generate_entry(&id));
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        // clap's own consistency checks: no clashing flags between the
        // client commands' shared options and each command's own.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

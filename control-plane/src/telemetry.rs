//! Logging and tracing: `tracing` everywhere, text or JSON logs, and
//! OpenTelemetry traces over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set. Without a collector the exporter's failures are dropped quietly and
//! requests never wait on it (spans are exported in the background).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, fmt};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Keeps the trace exporter alive; flushes it on drop.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` filters the log output only;
/// each layer has its own filter, so a quiet log does not silence traces.
pub fn init(format: LogFormat) -> TelemetryGuard {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.is_empty());
    init_with(format, endpoint.as_deref())
}

/// Like [`init`], with the OTLP endpoint given rather than read from the environment.
pub fn init_with(format: LogFormat, otlp_endpoint: Option<&str>) -> TelemetryGuard {
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let log_layer = match format {
        LogFormat::Text => fmt::layer()
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => {
            fmt::layer().with_writer(std::io::stderr).json().flatten_event(true).with_current_span(true).boxed()
        }
    }
    .with_filter(log_filter);

    let provider = otlp_endpoint.and_then(otlp_provider);
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("berth"))
            // The exporter's own transport crates must not feed back into the traces they export.
            .with_filter(
                Targets::new()
                    .with_default(LevelFilter::INFO)
                    .with_target("h2", LevelFilter::OFF)
                    .with_target("tonic", LevelFilter::OFF)
                    .with_target("hyper", LevelFilter::OFF)
                    .with_target("opentelemetry", LevelFilter::OFF),
            )
    });
    let _ = tracing_subscriber::registry().with(log_layer).with(otel_layer).try_init();
    if let (Some(endpoint), Some(_)) = (otlp_endpoint, &provider) {
        tracing::info!("exporting traces over OTLP to {endpoint}");
    }
    TelemetryGuard { provider }
}

fn otlp_provider(endpoint: &str) -> Option<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = match opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("berth: OTLP exporter for {endpoint} not started: {e}");
            return None;
        }
    };
    let resource = Resource::builder().with_service_name("berth").build();
    Some(SdkTracerProvider::builder().with_resource(resource).with_batch_exporter(exporter).build())
}

//! What a host watches: Prometheus text at `/metrics`, on the page's port
//! for `serve` and `gateway` and on `--metrics-listen` for a worker. One
//! registry per process (a process plays one role); the counters move where
//! the work happens, the gauges where things open and close.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Runs waiting for the device (`serve`).
    pub jobs_waiting: IntGauge,
    /// Runs on the device (`serve`, a worker).
    pub jobs_running: IntGauge,
    pub run_seconds: HistogramVec,
    pub forward_passes: IntCounterVec,
    /// Streams of run events open to browsers and programs.
    pub live_viewers: IntGauge,
    pub classes_open: IntGauge,
    pub class_followers: IntGauge,
    pub store_errors: IntCounter,
    pub queue_errors: IntCounter,
    advertisement_age: Gauge,
    /// A worker: when it last advertised its models; a gateway: when it
    /// last saw a live worker's advertisement.
    advertised: Mutex<Option<Instant>>,
}

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

impl Metrics {
    fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            Ok(register(&registry, IntGauge::new(name, help)?))
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            Ok(register(&registry, IntCounter::new(name, help)?))
        };
        // From a digit's 0.2 s to a photo's PDA of many minutes.
        let buckets = vec![
            0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
        ];
        Ok(Metrics {
            jobs_waiting: gauge("lens_jobs_waiting", "Explanations waiting for the device")?,
            jobs_running: gauge("lens_jobs_running", "Explanations on the device")?,
            run_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("lens_run_seconds", "Time an explanation took on the device")
                        .buckets(buckets),
                    &["model", "method"],
                )?,
            ),
            forward_passes: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "lens_forward_passes_total",
                        "Images the network classified for explanations (rate: forward passes per second)",
                    ),
                    &["model"],
                )?,
            ),
            live_viewers: gauge("lens_live_viewers", "Open streams of a run's events")?,
            classes_open: gauge("lens_classes_open", "Classrooms open")?,
            class_followers: gauge("lens_class_followers", "Students following a class")?,
            store_errors: counter("lens_store_errors_total", "Store calls that failed")?,
            queue_errors: counter(
                "lens_queue_errors_total",
                "NATS JetStream calls that failed",
            )?,
            advertisement_age: register(
                &registry,
                Gauge::new(
                    "lens_advertisement_age_seconds",
                    "A worker: seconds since it advertised its models; a gateway: since it saw a live worker's advertisement (NaN: never)",
                )?,
            ),
            advertised: Mutex::new(None),
            registry,
        })
    }

    /// Notes a (worker's) advertisement or a (gateway's) sight of one.
    pub fn advertised_now(&self) {
        *self.advertised.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Every metric as Prometheus text.
    pub fn render(&self) -> String {
        let age = self
            .advertised
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(f64::NAN, |at| at.elapsed().as_secs_f64());
        self.advertisement_age.set(age);
        let mut text = String::new();
        if let Err(error) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text) {
            tracing::error!("cannot encode the metrics: {error}");
        }
        text
    }
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics::new().expect("the metrics' names and labels are valid"))
}

/// One more of what `gauge` counts while this lives.
pub struct Counted(&'static IntGauge);

impl Counted {
    pub fn new(gauge: &'static IntGauge) -> Counted {
        gauge.inc();
        Counted(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics`.
pub fn route() -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                metrics().render(),
            )
        }),
    )
}

/// Serves `/metrics` alone on `listener` (a worker, which serves nothing
/// else), until the process ends.
pub async fn serve_metrics(listener: tokio::net::TcpListener) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!("metrics on http://{address}/metrics");
    }
    if let Err(error) = axum::serve(listener, route()).await {
        tracing::error!("the metrics endpoint stopped: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_metric_and_gauges_follow_what_is_open() {
        let metrics = Metrics::new().unwrap();
        metrics
            .forward_passes
            .with_label_values(&["digits"])
            .inc_by(625);
        metrics
            .run_seconds
            .with_label_values(&["digits", "EfficientPda"])
            .observe(0.2);
        let text = metrics.render();
        for name in [
            "lens_jobs_waiting 0",
            "lens_forward_passes_total{model=\"digits\"} 625",
            "lens_run_seconds_count{method=\"EfficientPda\",model=\"digits\"} 1",
            "lens_advertisement_age_seconds NaN",
            "# TYPE lens_run_seconds histogram",
        ] {
            assert!(text.contains(name), "{name} in\n{text}");
        }
        metrics.advertised_now();
        assert!(metrics
            .render()
            .contains("lens_advertisement_age_seconds 0"));
    }
}

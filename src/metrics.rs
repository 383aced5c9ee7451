//! Prometheus metrics. Each application has its own registry (tests and embedders run several
//! in one process); counters and histograms are updated where things happen, gauges are read
//! when `/metrics` is scraped.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Request latency buckets, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];
/// Batch sizes (reaper passes, group commits).
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1000.0];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub renewals: IntCounter,
    pub expiries: IntCounter,
    pub reaper_pass_seconds: Histogram,
    pub reaper_expired_per_pass: Histogram,
    pub rate_limited: IntCounter,
    pub commit_batch: Histogram,
    // Read at scrape time.
    pub active_sessions: IntGauge,
    pub pool_connections: IntGauge,
    pub pool_idle: IntGauge,
    pub pool_waiting: IntGauge,
    pub open_streams: IntGauge,
    pub write_queue: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("agent_sessions".into()), None)
            .expect("a valid metrics prefix");
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route and method",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("valid metric")
        };
        let metrics = Self {
            requests,
            latency,
            renewals: counter(
                "session_renewals_total",
                "Session renewals: explicit, and automatic on activity",
            ),
            expiries: counter(
                "session_expiries_total",
                "Sessions the reaper marked expired",
            ),
            reaper_pass_seconds: histogram(
                "reaper_pass_duration_seconds",
                "Duration of a reaper pass",
                &LATENCY_BUCKETS,
            ),
            reaper_expired_per_pass: histogram(
                "reaper_expired_per_pass",
                "Sessions expired by one reaper pass",
                &BATCH_BUCKETS,
            ),
            rate_limited: counter(
                "rate_limited_total",
                "Requests refused with 429 by a rate limit",
            ),
            commit_batch: histogram(
                "write_commit_batch_size",
                "Writes committed together by one SQLite group commit",
                &BATCH_BUCKETS,
            ),
            active_sessions: gauge("active_sessions", "Sessions active now"),
            pool_connections: gauge("db_pool_connections", "Open database connections"),
            pool_idle: gauge("db_pool_idle_connections", "Idle database connections"),
            pool_waiting: gauge(
                "db_pool_waiting",
                "Requests waiting for a database connection",
            ),
            open_streams: gauge("open_streams", "Open event streams and waiting long-polls"),
            write_queue: gauge(
                "write_queue_depth",
                "Writes waiting for the SQLite group commit",
            ),
            registry,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(self.requests.clone()),
            Box::new(self.latency.clone()),
            Box::new(self.renewals.clone()),
            Box::new(self.expiries.clone()),
            Box::new(self.reaper_pass_seconds.clone()),
            Box::new(self.reaper_expired_per_pass.clone()),
            Box::new(self.rate_limited.clone()),
            Box::new(self.commit_batch.clone()),
            Box::new(self.active_sessions.clone()),
            Box::new(self.pool_connections.clone()),
            Box::new(self.pool_idle.clone()),
            Box::new(self.pool_waiting.clone()),
            Box::new(self.open_streams.clone()),
            Box::new(self.write_queue.clone()),
        ];
        for c in collectors {
            self.registry.register(c).expect("metric names are unique");
        }
    }

    /// One answered request. `route` is the matched pattern (`/api/messaging/sessions/{id}`),
    /// so the label set stays small whatever the ids.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        // Any token is a method to HTTP: the unknown ones share one label value.
        let method = match method {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding metric families into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

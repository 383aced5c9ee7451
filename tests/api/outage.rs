//! PostgreSQL going away and coming back, as the service sees it through a TCP proxy the test
//! can cut: while it is cut, requests that need the database answer 503 at once (not after
//! the pool's 5 s checkout timeout) and the probes say so; once it is restored the service
//! serves again by itself, without a restart.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{id_of, paths, Kind, Reply, TestApp};

/// A failure must answer well within this: the pool's checkout timeout is 5 s.
const FAIL_FAST: Duration = Duration::from_secs(2);
/// How long the service may take to notice the database is back.
const RECOVERY: Duration = Duration::from_secs(10);

/// A TCP proxy in front of PostgreSQL. `cut` closes every forwarded connection and closes
/// each new one `refuse_after` it is accepted (at once, or like a host that is slow to fail);
/// `restore` forwards again.
struct Proxy {
    address: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped at each cut; every forwarded connection ends when it changes.
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String, refuse_after: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0_u64);
        let task = tokio::spawn({
            let (up, cuts) = (up.clone(), cuts.clone());
            async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    // Subscribed before `up` is read: a cut after this point ends the
                    // connection, a cut before it is seen here.
                    let mut cut = cuts.subscribe();
                    if !up.load(Ordering::SeqCst) {
                        tokio::spawn(async move {
                            tokio::time::sleep(refuse_after).await;
                            drop(inbound);
                        });
                        continue;
                    }
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut.changed() => {}
                        }
                        // Both sockets close here.
                    });
                }
            }
        });
        Proxy {
            address,
            up,
            cuts,
            task,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `scheme://user@`, `host:port` and `/path?query` parts of a database URL.
fn parts(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (format!("{scheme}://{user}"), host, tail.to_owned())
}

/// `url` through the proxy at `address`: the same database, user and options.
fn through(url: &str, address: SocketAddr) -> String {
    let (head, _, tail) = parts(url);
    format!("{head}{address}{tail}")
}

/// A request and how long its answer took.
async fn timed(
    app: &TestApp,
    method: Method,
    path: impl AsRef<str>,
    body: Option<Value>,
) -> (Reply, Duration) {
    let started = Instant::now();
    let mut call = app.call(method, path);
    if let Some(body) = body {
        call = call.json(body);
    }
    let reply = call.send().await;
    (reply, started.elapsed())
}

async fn get_session(app: &TestApp, id: &str) -> (Reply, Duration) {
    timed(app, Method::GET, paths::session(id), None).await
}

async fn send(app: &TestApp, id: &str, content: &str) -> (Reply, Duration) {
    let body = json!({"content": content});
    timed(app, Method::POST, paths::messages(id), Some(body)).await
}

/// A probe (`/readyz`, `/livez`): its status and how long it took.
async fn probe(app: &TestApp, path: &str) -> (StatusCode, Value, Duration) {
    let (reply, took) = timed(app, Method::GET, path, None).await;
    (reply.status, reply.body, took)
}

fn assert_unavailable(what: &str, (reply, took): &(Reply, Duration)) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what} while the database is cut: {}",
        reply.text
    );
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE");
    assert!(
        *took < FAIL_FAST,
        "{what} while the database is cut took {took:?}"
    );
}

/// PostgreSQL only. The database goes away (its connections closed, new ones refused at
/// once) and comes back: meanwhile every request that needs it answers 503 fast, the probes
/// say not ready but alive; afterwards the same server serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_fast_and_recovers_by_itself() {
    if let Some(kind) = Kind::postgres() {
        outage(kind, Duration::ZERO).await;
    }
}

/// The same outage, but a new connection takes 200 ms to fail (a database host that is slow
/// to refuse; with dropped packets a connect hangs far longer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_with_slow_failing_connects_fails_fast() {
    if let Some(kind) = Kind::postgres() {
        outage(kind, Duration::from_millis(200)).await;
    }
}

async fn outage(kind: Kind, refuse_after: Duration) {
    let db = kind.fresh_db();
    let proxy = Proxy::start(parts(&db.url).1, refuse_after).await;
    let proxied = through(&db.url, proxy.address);
    assert!(proxied.contains("options=-csearch_path%3D"), "{proxied}");
    let app = TestApp::spawn_on(db, |s| s.database_url = proxied).await;

    let agent = app.agent().await;
    let id = id_of(&app.session_with(&agent, json!({})).await);
    let (reply, _) = get_session(&app, &id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let (reply, _) = send(&app, &id, "before").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let (status, _, _) = probe(&app, "/readyz").await;
    assert_eq!(status, StatusCode::OK);

    proxy.cut();
    // The pool still holds connections that were open: the first requests find them dead,
    // the later ones find none and the database known to be down. All fail fast.
    for round in 0..6 {
        assert_unavailable(
            &format!("GET session #{round}"),
            &get_session(&app, &id).await,
        );
        assert_unavailable(
            &format!("POST message #{round}"),
            &send(&app, &id, "lost").await,
        );
    }
    let (status, body, took) = probe(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(took < FAIL_FAST, "/readyz took {took:?}");
    let (status, body, _) = probe(&app, "/livez").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    proxy.restore();
    let restored = Instant::now();
    loop {
        let (reply, _) = get_session(&app, &id).await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text
        );
        assert!(
            restored.elapsed() < RECOVERY,
            "still {} {} after {:?}",
            reply.status,
            reply.text,
            restored.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (reply, _) = send(&app, &id, "after").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let (status, body, _) = probe(&app, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The writes that got 503 left nothing.
    let (status, page) = app.get(paths::messages(&id)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let contents: Vec<&Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["content"])
        .collect();
    assert_eq!(contents, [&json!("after"), &json!("before")]);
}

crate::backend_tests!(a_pool_with_no_free_connection_answers_busy_then_serves_again);

/// Every connection of the pool is taken (here: held by the test) for longer than a request
/// waits: the request answers 503 `SERVICE_UNAVAILABLE` saying the service is busy, with
/// `Retry-After`, not that the database is down; once a connection is free it is served.
async fn a_pool_with_no_free_connection_answers_busy_then_serves_again(kind: Kind) {
    let app = TestApp::spawn_with(kind, |s| s.pool_size = 1).await;
    let session = app.session().await;
    let pool = app.pool.clone();
    let (hold, release) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let holder = tokio::task::spawn_blocking(move || {
        let conn = pool.get().expect("the only connection");
        held_tx.send(()).unwrap();
        let _ = release.recv();
        drop(conn);
    });
    held_rx.recv().unwrap();
    let reply = app
        .call(Method::GET, paths::sessions().as_ref())
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(reply.body["code"], "SERVICE_UNAVAILABLE");
    assert!(
        reply.body["message"].as_str().unwrap().contains("busy"),
        "{}",
        reply.body
    );
    assert_eq!(reply.headers["retry-after"], "1");
    drop(hold);
    holder.await.unwrap();
    let (status, body) = app.get(paths::session(&session)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

//! Connection-level limits of both APIs, in one acceptor:
//!
//! * a global connection limit: a connection is admitted only while fewer than
//!   `max_connections` are open; others are closed at once (before any TLS
//!   work), so idle or slow clients cannot exhaust file descriptors or memory;
//! * an idle timeout: a connection with no request in flight for
//!   `idle_timeout` (since it was accepted, or since its last response ended)
//!   is closed, for HTTP/1.1 and HTTP/2 alike. Bytes do not count as activity
//!   (HTTP/2 pings and their answers would keep any connection alive), only
//!   requests do: the wrapped service counts them, the wrapped stream fails its
//!   next read once the connection has been idle too long.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::{Request, Response};
use axum_server::accept::Accept;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Wraps another acceptor with a connection limit and an idle timeout.
#[derive(Clone, Debug)]
pub(crate) struct LimitAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl<A> LimitAcceptor<A> {
    /// At most `max_connections` (at least 1) connections at once, each
    /// closed after `idle_timeout` without a request in flight.
    pub(crate) fn new(inner: A, max_connections: usize, idle_timeout: Duration) -> Self {
        LimitAcceptor {
            inner,
            permits: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            idle_timeout,
        }
    }
}

/// Requests in flight on one connection, and since when it has had none.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    fn idle_since(&self) -> Instant {
        *self
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request in flight, until its response body is dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The time first, so a reader seeing no request in flight sees it.
        *self
            .0
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's service, counting its requests in flight.
#[derive(Clone, Debug)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Tracked<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let guard = InFlight::start(&self.activity);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(move |body| {
                Body::new(body.map_frame(move |frame| {
                    let _in_flight = &guard;
                    frame
                }))
            }))
        })
    }
}

impl<A, I, S> Accept<I, S> for LimitAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Limited<A::Stream>;
    type Service = Tracked<A::Service>;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            // Debug, not warn: a flood of connections must not flood the log.
            tracing::debug!("connection limit reached: closing a new connection");
            // Dropping the stream closes the connection.
            drop(stream);
            return Box::pin(std::future::ready(Err(io::Error::other(
                "connection limit reached",
            ))));
        };
        let accepted = self.inner.accept(stream, service);
        let idle_timeout = self.idle_timeout;
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let activity = Arc::new(Activity::new());
            Ok((
                Limited {
                    inner: stream,
                    _permit: permit,
                    activity: Arc::clone(&activity),
                    idle_timeout,
                    timer: Box::pin(tokio::time::sleep(idle_timeout)),
                },
                Tracked {
                    inner: service,
                    activity,
                },
            ))
        })
    }
}

/// A connection counted against the limit until it is dropped, whose reads
/// fail once it has been idle for `idle_timeout`.
#[derive(Debug)]
pub(crate) struct Limited<T> {
    inner: T,
    _permit: OwnedSemaphorePermit,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<T> Limited<T> {
    /// Ready with an error once the connection has been idle too long;
    /// otherwise arms the timer (waking this task) and is pending.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let now = Instant::now();
            let deadline = if self.activity.in_flight.load(Ordering::SeqCst) > 0 {
                // Busy: look again later (the armed deadline if still ahead,
                // so a busy stream does not re-arm the timer on every read).
                let armed = self.timer.deadline();
                if armed > now {
                    armed
                } else {
                    now + self.idle_timeout
                }
            } else {
                self.activity.idle_since() + self.idle_timeout
            };
            if deadline <= now {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Limited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Poll::Ready(result) = Pin::new(&mut self.inner).poll_read(cx, buf) {
            return Poll::Ready(result);
        }
        match self.poll_idle(cx) {
            Poll::Ready(error) => {
                tracing::debug!("closing an idle connection");
                Poll::Ready(Err(error))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Limited<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

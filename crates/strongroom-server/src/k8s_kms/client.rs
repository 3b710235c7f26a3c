//! A client of the plugin socket, as the kube-apiserver connects: HTTP/2 over the unix
//! socket, authority `localhost`. Used by `strongroom bench`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::pb::key_management_service_client::KeyManagementServiceClient;

/// One HTTP/2 connection to the socket.
#[derive(Debug, Clone)]
pub struct UnixChannel(SendRequest<tonic::body::Body>);

impl tower::Service<hyper::Request<tonic::body::Body>> for UnixChannel {
    type Response = hyper::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: hyper::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// Connects to the plugin socket at `path`.
pub async fn connect(path: &Path) -> std::io::Result<KeyManagementServiceClient<UnixChannel>> {
    let stream = tokio::net::UnixStream::connect(path).await?;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "plugin client connection ended");
        }
    });
    Ok(KeyManagementServiceClient::with_origin(
        UnixChannel(send),
        hyper::Uri::from_static("http://localhost"),
    ))
}

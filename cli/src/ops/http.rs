//! The canary's viewer requests: GET over HTTPS (rustls, the system's roots) or plain http (the
//! local stack's edges), through hyper, which the AWS SDK already brings.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Error, Result, error_chain};

pub struct Viewer {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

/// What a viewer got.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// CloudFront's `X-Cache` (`Hit from cloudfront`, `Miss from cloudfront`, ...).
    pub x_cache: Option<String>,
}

impl Viewer {
    pub fn new() -> Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::Usage(format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// GET `url` (already percent-encoded).
    pub async fn get(&self, url: &str) -> Result<Response> {
        let fail =
            |e: &dyn std::error::Error| Error::Http(format!("GET {url}: {}", error_chain(e)));
        let uri: hyper::Uri = url.parse().map_err(|e| fail(&e))?;
        let response = self.client.get(uri).await.map_err(|e| fail(&e))?;
        let status = response.status().as_u16();
        let x_cache = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(&e))?
            .to_bytes()
            .to_vec();
        Ok(Response {
            status,
            body,
            x_cache,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-request HTTP server: answers with `X-Cache` and echoes the request line.
    async fn serve_once() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let n = socket.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = request.lines().next().unwrap_or_default().to_owned();
            let reply = format!(
                "HTTP/1.1 200 OK\r\nX-Cache: Hit from cloudfront\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{line}",
                line.len()
            );
            socket.write_all(reply.as_bytes()).await.unwrap();
        });
        (base, task)
    }

    #[tokio::test]
    async fn plain_http_gets_the_body_and_x_cache_with_the_path_sent_as_encoded() {
        let (base, server) = serve_once().await;
        let viewer = Viewer::new().unwrap();
        let got = viewer
            .get(&format!("{base}/c/a%20b%2B%23.txt"))
            .await
            .unwrap();
        server.await.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.x_cache.as_deref(), Some("Hit from cloudfront"));
        assert_eq!(
            String::from_utf8(got.body).unwrap(),
            "GET /c/a%20b%2B%23.txt HTTP/1.1"
        );
    }

    #[tokio::test]
    async fn an_unreachable_viewer_endpoint_is_a_named_error() {
        let viewer = Viewer::new().unwrap();
        let err = viewer.get("http://127.0.0.1:1/x").await.unwrap_err();
        assert!(
            err.to_string().starts_with("GET http://127.0.0.1:1/x"),
            "{err}"
        );
    }
}

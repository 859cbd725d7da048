//! AWS SigV4 request signing (service `berth`), with aws-sigv4.

use std::time::SystemTime;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign as aws_sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::Error;

/// Signs `req` in place: `host`, `x-amz-date`, `x-amz-content-sha256` and `authorization`.
pub(crate) fn sign(
    req: &mut reqwest::Request,
    access_key_id: &str,
    secret: &str,
    region: &str,
    at: SystemTime,
) -> Result<(), Error> {
    let host = {
        let url = req.url();
        let host = url.host_str().unwrap_or_default();
        match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        }
    };
    crate::insert(req.headers_mut(), "host", &host)?;
    let body = req.body().and_then(|b| b.as_bytes()).unwrap_or_default().to_vec();
    let identity: Identity = AwsCredentials::new(access_key_id, secret, None, None, "berth-sdk").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("berth")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| Error::InvalidInput(format!("signing: {e}")))?
        .into();
    let headers: Vec<(String, String)> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned())).collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        req.url().as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )
    .map_err(|e| Error::InvalidInput(format!("signing: {e}")))?;
    let (instructions, _) =
        aws_sign(signable, &params).map_err(|e| Error::InvalidInput(format!("signing: {e}")))?.into_parts();
    let (new_headers, _) = instructions.into_parts();
    for h in new_headers {
        crate::insert(req.headers_mut(), h.name(), h.value())?;
    }
    Ok(())
}

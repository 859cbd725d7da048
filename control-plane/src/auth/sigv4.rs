//! AWS Signature Version 4 verification, in the Authorization header form and
//! the presigned query form.
//!
//! aws-sigv4 has no verify call, so the request is signed again with the
//! stored secret, using exactly the headers the client listed in
//! SignedHeaders, the time from its X-Amz-Date, the received URI and the
//! received body bytes, and the two signatures are compared in constant time.
//! Canonicalization settings are the AWS SDKs' defaults for every service but
//! S3: double percent-encoding of the path and path normalization.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use berth_api::ErrorCode;
use http::HeaderMap;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::app::{AppError, AppResult};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const SERVICE: &str = "berth";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far a signed request's time may be from ours (as AWS allows).
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// The longest a presigned URL may be valid (as AWS allows).
pub const MAX_PRESIGN_EXPIRY: u64 = 7 * 24 * 3600;

/// The signature a request presents, parsed but not yet checked.
#[derive(Clone, Debug)]
pub struct Presented {
    pub access_key_id: String,
    scope_date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    time: OffsetDateTime,
    /// Presigned URLs: seconds of validity from `time`.
    expires: Option<u64>,
}

fn incomplete(msg: impl Into<String>) -> AppError {
    AppError::auth(ErrorCode::IncompleteSignature, msg)
}

fn parse_amz_date(value: &str) -> AppResult<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, format)
        .map(|t| t.assume_utc())
        .map_err(|_| incomplete(format!("X-Amz-Date {value:?} is not of the form YYYYMMDDTHHMMSSZ")))
}

/// `AKID/20261129/local/berth/aws4_request`
fn parse_credential(credential: &str) -> AppResult<(String, String, String, String)> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [akid, date, region, service, "aws4_request"] if !akid.is_empty() => {
            Ok(((*akid).to_owned(), (*date).to_owned(), (*region).to_owned(), (*service).to_owned()))
        }
        _ => Err(incomplete("Credential must be <access-key-id>/<date>/<region>/<service>/aws4_request")),
    }
}

/// Parses the signature from the Authorization header or the query string.
/// Returns None when the request carries no SigV4 signature at all.
pub fn parse(uri: &http::Uri, headers: &HeaderMap) -> AppResult<Option<Presented>> {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION) {
        let auth = auth.to_str().map_err(|_| incomplete("the Authorization header is not ASCII"))?;
        let Some(rest) = auth.strip_prefix(ALGORITHM) else {
            return Ok(None);
        };
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',').map(str::trim) {
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed_headers = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) = (credential, signed_headers, signature) else {
            return Err(incomplete("Authorization must name Credential, SignedHeaders and Signature"));
        };
        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| incomplete("a signed request needs an X-Amz-Date header"))?;
        let (access_key_id, scope_date, region, service) = parse_credential(credential)?;
        return Ok(Some(Presented {
            access_key_id,
            scope_date,
            region,
            service,
            signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
            signature: signature.to_owned(),
            time: parse_amz_date(amz_date)?,
            expires: None,
        }));
    }
    let query = uri.query().unwrap_or("");
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(signature) = get("X-Amz-Signature") else {
        return Ok(None);
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(incomplete(format!("X-Amz-Algorithm must be {ALGORITHM}")));
    }
    let credential = get("X-Amz-Credential").ok_or_else(|| incomplete("X-Amz-Credential is missing"))?;
    let amz_date = get("X-Amz-Date").ok_or_else(|| incomplete("X-Amz-Date is missing"))?;
    let signed_headers = get("X-Amz-SignedHeaders").ok_or_else(|| incomplete("X-Amz-SignedHeaders is missing"))?;
    let expires = get("X-Amz-Expires")
        .and_then(|e| e.parse::<u64>().ok())
        .filter(|e| (1..=MAX_PRESIGN_EXPIRY).contains(e))
        .ok_or_else(|| incomplete(format!("X-Amz-Expires must be 1-{MAX_PRESIGN_EXPIRY} seconds")))?;
    let (access_key_id, scope_date, region, service) = parse_credential(credential)?;
    Ok(Some(Presented {
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
        time: parse_amz_date(amz_date)?,
        expires: Some(expires),
    }))
}

impl Presented {
    pub fn is_presigned(&self) -> bool {
        self.expires.is_some()
    }

    /// Checks what can be checked without the secret: scope, time, headers.
    pub fn check_shape(&self, region: &str, now: OffsetDateTime) -> AppResult<()> {
        if self.service != SERVICE {
            return Err(incomplete(format!(
                "the credential scope's service must be {SERVICE:?}, got {:?}",
                self.service
            )));
        }
        if self.region != region {
            return Err(incomplete(format!("the credential scope's region must be {region:?}, got {:?}", self.region)));
        }
        let date = format!("{:04}{:02}{:02}", self.time.year(), u8::from(self.time.month()), self.time.day());
        if self.scope_date != date {
            return Err(incomplete("the credential scope's date must be X-Amz-Date's date"));
        }
        if !self.signed_headers.iter().any(|h| h == "host") {
            return Err(incomplete("SignedHeaders must include host"));
        }
        if self.signed_headers.iter().any(|h| h.is_empty() || h.chars().any(|c| c.is_ascii_uppercase())) {
            return Err(incomplete("SignedHeaders must be lowercase header names separated by ';'"));
        }
        let skew = time::Duration::try_from(MAX_SKEW).unwrap_or(time::Duration::minutes(5));
        match self.expires {
            None => {
                if (now - self.time).abs() > skew {
                    return Err(AppError::auth(
                        ErrorCode::RequestExpired,
                        format!(
                            "the request was signed at {}; the server's time is {now}, more than 5 minutes apart",
                            self.time
                        ),
                    ));
                }
            }
            Some(expires) => {
                let expires = time::Duration::seconds(i64::try_from(expires).unwrap_or(i64::MAX));
                if now < self.time - skew || now > self.time + expires {
                    return Err(AppError::auth(
                        ErrorCode::RequestExpired,
                        "the presigned URL has expired or is not yet valid",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Signs the request again with `secret` and compares.
    pub fn verify(
        &self,
        method: &str,
        uri: &http::Uri,
        headers: &HeaderMap,
        body: &[u8],
        secret: &str,
    ) -> AppResult<()> {
        let mismatch = || {
            AppError::auth(
                ErrorCode::SignatureDoesNotMatch,
                "the request signature we calculated does not match the signature you provided",
            )
        };
        let mut signed: Vec<(&str, &str)> = Vec::new();
        for name in &self.signed_headers {
            let mut any = false;
            for v in headers.get_all(name.as_str()) {
                let v = v.to_str().map_err(|_| mismatch())?;
                signed.push((name.as_str(), v));
                any = true;
            }
            if !any {
                return Err(incomplete(format!("SignedHeaders names {name}, which the request does not carry")));
            }
        }
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Double;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
        // Exactly the client's signed headers are passed; none may be dropped.
        settings.excluded_headers = None;
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        let path_and_query;
        // The payload hashes the client may have used; each is tried in turn.
        let bodies: Vec<SignableBody<'_>> = if let Some(expires) = self.expires {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(Duration::from_secs(expires));
            if !body.is_empty() {
                return Err(incomplete(
                    "presigned URLs may not carry a body: sign the request in the Authorization header",
                ));
            }
            path_and_query = strip_signature_params(uri);
            // Non-S3 signers (botocore, the AWS SDKs' token generators) hash the empty
            // body; S3-style presigners send UNSIGNED-PAYLOAD. Both cover the same (empty) body.
            vec![SignableBody::Bytes(body), SignableBody::UnsignedPayload]
        } else {
            path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
            let claimed = headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok());
            if claimed == Some(UNSIGNED_PAYLOAD) {
                if !body.is_empty() {
                    return Err(incomplete("UNSIGNED-PAYLOAD is only accepted for requests without a body"));
                }
                vec![SignableBody::UnsignedPayload]
            } else {
                vec![SignableBody::Bytes(body)]
            }
        };
        let identity: Identity = Credentials::new(&self.access_key_id, secret, None, None, "berth").into();
        let time = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(self.time.unix_timestamp()).map_err(|_| mismatch())?);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|_| mismatch())?
            .into();
        let given = self.signature.to_ascii_lowercase();
        for body in bodies {
            let signable =
                SignableRequest::new(method, &path_and_query, signed.iter().copied(), body).map_err(|_| mismatch())?;
            let output = sign(signable, &params).map_err(|_| mismatch())?;
            if bool::from(output.signature().as_bytes().ct_eq(given.as_bytes())) {
                return Ok(());
            }
        }
        Err(mismatch())
    }
}

/// The URI without the presigning parameters, which the signer adds back itself.
fn strip_signature_params(uri: &http::Uri) -> String {
    const OWN: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ];
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            !OWN.contains(&key.as_ref())
        })
        .collect();
    if kept.is_empty() { uri.path().to_owned() } else { format!("{}?{}", uri.path(), kept.join("&")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs like a client would, with aws-sigv4's signer.
    fn signed(method: &str, uri: &str, body: &[u8], secret: &str, at: SystemTime) -> (http::Uri, HeaderMap) {
        let identity: Identity = Credentials::new("BKTEST", secret, None, None, "t").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("local")
            .name("berth")
            .time(at)
            .settings(settings)
            .build();
        let params = params.expect("params").into();
        let headers = [("host", "127.0.0.1:7070"), ("content-type", "application/json")];
        let signable =
            SignableRequest::new(method, uri, headers.into_iter(), SignableBody::Bytes(body)).expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut req = http::Request::builder().method(method).uri(uri).header("host", "127.0.0.1:7070");
        req = req.header("content-type", "application/json");
        let mut req = req.body(()).expect("req");
        instructions.apply_to_request_http1x(&mut req);
        // Headers added after signing (as HTTP clients do) must not matter.
        req.headers_mut().insert("user-agent", http::HeaderValue::from_static("test"));
        (req.uri().clone(), req.headers().clone())
    }

    #[test]
    fn accepts_and_rejects_tampering() {
        let now = SystemTime::now();
        let t = OffsetDateTime::from(now);
        let body = br#"{"name":"a b"}"#;
        let uri_s = "/v1/clusters/x%20y?b=2&a=1&a=0";
        let (uri, headers) = signed("POST", uri_s, body, "s3cret", now);
        let p = parse(&uri, &headers).expect("parse").expect("present");
        p.check_shape("local", t).expect("shape");
        p.verify("POST", &uri, &headers, body, "s3cret").expect("valid");
        assert!(p.verify("POST", &uri, &headers, b"{\"name\":\"a c\"}", "s3cret").is_err(), "body");
        assert!(p.verify("PUT", &uri, &headers, body, "s3cret").is_err(), "method");
        assert!(p.verify("POST", &uri, &headers, body, "other").is_err(), "secret");
        let tampered: http::Uri = "/v1/clusters/x%20y?b=3&a=1&a=0".parse().expect("uri");
        assert!(p.verify("POST", &tampered, &headers, body, "s3cret").is_err(), "query");
        let mut h2 = headers.clone();
        h2.insert("content-type", http::HeaderValue::from_static("text/plain"));
        assert!(p.verify("POST", &uri, &h2, body, "s3cret").is_err(), "signed header");
        assert!(p.check_shape("elsewhere", t).is_err(), "region");
        assert!(p.check_shape("local", t + time::Duration::minutes(6)).is_err(), "skew");
    }
}

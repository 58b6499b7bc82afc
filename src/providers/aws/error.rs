use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::apply::{Access, ErrorKind, ProviderError};
use crate::error::messages;

const TRANSIENT_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestThrottled",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InsufficientInstanceCapacity",
    "IncorrectState",
];

/// AWS's answers to credentials it does not accept: EC2's `AuthFailure`;
/// STS, IAM, RDS and ELB's `InvalidClientTokenId`; SSM's
/// `UnrecognizedClientException`; a wrong secret; an expired session.
const REJECTED_CODES: &[&str] = &[
    "AuthFailure",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// Why no request could be sent or accepted at all, with the cause to show:
/// the default chain found no credentials (the SDK's `CredentialsNotLoaded`,
/// or another failure of the chain, such as an expired SSO session), the
/// region's endpoint does not resolve (an unknown region), or AWS refused
/// the credentials (for a credential scope naming no valid region, AWS says
/// so in the refusal).
fn access<E>(err: &SdkError<E, HttpResponse>) -> Option<(Access, String)>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_credential_types::provider::error::CredentialsError;
    if let SdkError::ServiceError(_) = err {
        let code = err.code()?;
        if !REJECTED_CODES.contains(&code) {
            return None;
        }
        let message = err.message().unwrap_or_default();
        let cause = format!("{code}: {message}");
        let region = message.to_ascii_lowercase().contains("valid region");
        return Some((
            if region {
                Access::UnknownRegion
            } else {
                Access::Rejected
            },
            cause,
        ));
    }
    if !matches!(err, SdkError::DispatchFailure(_)) {
        return None;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            let name = match c {
                CredentialsError::CredentialsNotLoaded(_) => "CredentialsNotLoaded",
                CredentialsError::ProviderTimedOut(_) => "ProviderTimedOut",
                CredentialsError::InvalidConfiguration(_) => "InvalidConfiguration",
                CredentialsError::ProviderError(_) => "ProviderError",
                _ => "CredentialsError",
            };
            return Some((Access::NoCredentials, format!("{name}: {}", messages(c))));
        }
        // hyper's connector: the endpoint's host name did not resolve.
        if e.to_string() == "dns error" {
            return Some((Access::UnknownRegion, messages(e)));
        }
        source = e.source();
    }
    None
}

/// Maps an SDK error to what the executor needs to know: retry or not.
pub(crate) fn classify<E>(op: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = err.code().map(str::to_string);
    if let Some((access, cause)) = access(&err) {
        return ProviderError::new(ErrorKind::Access(access), code, op).caused_by(cause);
    }
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorKind::Transient
        }
        SdkError::ServiceError(_) => match code.as_deref() {
            Some(c) if TRANSIENT_CODES.contains(&c) => ErrorKind::Transient,
            Some("DependencyViolation")
            | Some("InvalidDBInstanceState")
            | Some("VolumeInUse")
            | Some("DeleteConflict") => ErrorKind::DependencyViolation,
            Some(c)
                if c == "NoSuchEntity"
                    || c == "LoadBalancerNotFound"
                    || c.ends_with("NotFound")
                    || c.ends_with("NotFoundFault")
                    || c.ends_with(".NotFound") =>
            {
                ErrorKind::NotFound
            }
            _ => ErrorKind::Fatal,
        },
        _ => ErrorKind::Fatal,
    };
    // A 5xx without a recognised code is still worth another try.
    let kind = match (&err, kind) {
        (SdkError::ServiceError(_), ErrorKind::Fatal) if status >= 500 => ErrorKind::Transient,
        (_, k) => k,
    };
    // The call is the message (a provider may say what it was for); the
    // service's answer is the cause.
    let cause = match (&code, err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    ProviderError::new(kind, code, op).caused_by(cause)
}

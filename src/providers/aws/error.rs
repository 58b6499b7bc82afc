use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::apply::{ErrorKind, ProviderError};

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

/// Maps an SDK error to what the executor needs to know: retry or not.
pub(crate) fn classify<E>(op: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = err.code().map(str::to_string);
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

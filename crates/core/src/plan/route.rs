//! The instance's front door on the proxy: its hostname and URL, the access gate and the hostname
//! masquerade, with the checks that tie them to an HTTP route.

use super::{GateSpec, HostCheck, HttpRoute, MasqueradeSpec, OriginalHost, PlanError, UpRequest};
use crate::config::Config;
use crate::names::{validate_hostname, InstanceName};

/// The longest password bcrypt uses; longer ones would be cut silently, so they are refused.
pub const BASIC_AUTH_MAX_PASSWORD: usize = 72;

pub(super) struct Front {
    pub http_port: Option<u16>,
    pub http: Option<HttpRoute>,
    pub gate: GateSpec,
    pub masquerade: Option<MasqueradeSpec>,
    pub host_check: HostCheck,
}

pub(super) fn front(
    req: &UpRequest,
    cfg: &Config,
    name: &InstanceName,
) -> Result<Front, PlanError> {
    let http_port = req.port.or(req.profile.http_port);
    let http = match http_port {
        Some(port) => {
            let host = match &req.host {
                Some(h) => validate_hostname(h)?,
                None => validate_hostname(&format!("{}.{}", name, cfg.base_domain))?,
            };
            let url = cfg.proxy.url(&host);
            Some(HttpRoute { host, port, url })
        }
        None => {
            if let Some(h) = &req.host {
                validate_hostname(h)?;
                return Err(PlanError::HostWithoutHttp(h.clone()));
            }
            None
        }
    };
    if req.idle.is_some() && http.is_none() {
        return Err(PlanError::IdleWithoutHttp);
    }
    let gate = gate(req)?;
    if !gate.is_open() && http.is_none() {
        return Err(PlanError::GateWithoutHttp);
    }
    let original = match &req.original_host {
        Some(h) if http.is_none() => return Err(PlanError::MasqueradeWithoutHttp(h.clone())),
        Some(h) => Some(OriginalHost::parse(h, req.rewrite_bodies)?),
        None => None,
    };
    let (masquerade, host_check) = match original {
        Some(OriginalHost::Auto) if req.no_host_check => return Err(PlanError::AutoWithoutCheck),
        Some(OriginalHost::Auto) => (
            None,
            HostCheck::Auto {
                bodies: req.rewrite_bodies,
            },
        ),
        Some(OriginalHost::Given(m)) if req.no_host_check => (Some(m), HostCheck::Off),
        Some(OriginalHost::Given(m)) => (Some(m), HostCheck::Verify),
        None if req.no_host_check || http.is_none() => (None, HostCheck::Off),
        None => (None, HostCheck::Refuse),
    };
    Ok(Front {
        http_port,
        http,
        gate,
        masquerade,
        host_check,
    })
}

fn gate(req: &UpRequest) -> Result<GateSpec, PlanError> {
    if let Some((user, password)) = &req.basic_auth {
        if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
            return Err(PlanError::BasicAuthUser(user.clone()));
        }
        if password.len() > BASIC_AUTH_MAX_PASSWORD {
            return Err(PlanError::BasicAuthPassword(password.len()));
        }
    }
    Ok(GateSpec {
        share: req.share,
        basic_auth_user: req.basic_auth.as_ref().map(|(u, _)| u.clone()),
        allow: req.allow.clone(),
    })
}

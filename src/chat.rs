//! The reference web chat page, `/chat`: three static files compiled into the binary (no build
//! step, no CDN, works offline) and the small configuration an operator serves to pages that
//! embed it without a query string. The page talks to the public API only: it creates its
//! session with a publishable key (`sessions:create`, bound to one agent) or, in the open
//! loopback mode, with none, and from then on uses the session's own token.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::config::ChatSettings;
use crate::domain::{Caller, Scope};
use crate::state::AppState;

const INDEX: &str = include_str!("../web/chat/index.html");
const SCRIPT: &str = include_str!("../web/chat/chat.js");
const STYLE: &str = include_str!("../web/chat/chat.css");

/// Only the page's own files and the API on this origin; the page may be framed (embedded).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat", web::get().to(index))
        .route("/chat/", web::get().to(index))
        .route("/chat/chat.js", web::get().to(script))
        .route("/chat/chat.css", web::get().to(style))
        .route("/chat/config.json", web::get().to(config));
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // Small files that change with the binary: always revalidated, never stale.
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn index() -> HttpResponse {
    let mut response = asset("text/html; charset=utf-8", INDEX);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    // The page's URL may carry its publishable key: never sent on to other sites.
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// `{agentId, key}` for pages opened without `?agentId=`: both null unless configured.
async fn config(state: web::Data<AppState>) -> HttpResponse {
    let ChatSettings { agent_id, key } = &state.settings.chat;
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .json(json!({ "agentId": agent_id, "key": key }))
}

/// Why a configured chat key may not be served to every visitor.
pub fn check_publishable(chat: &ChatSettings, caller: &Caller) -> Result<(), String> {
    let Some(agent) = chat.agent_id else {
        return Err("AGENT_SESSIONS_CHAT_KEY needs AGENT_SESSIONS_CHAT_AGENT_ID".to_owned());
    };
    match caller {
        Caller::Key {
            scopes,
            agent_id: Some(bound),
            ..
        } if *bound == agent && scopes.iter().eq([Scope::SessionsCreate]) => Ok(()),
        _ => Err(format!(
            "AGENT_SESSIONS_CHAT_KEY is served to every visitor of /chat, so it must be a \
             publishable key: scope sessions:create only, bound to agent {agent} \
             (agent-sessions keys create --scope sessions:create --agent {agent} --name web)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AgentId, Scopes};

    fn key(scopes: &[Scope], agent: Option<AgentId>) -> Caller {
        Caller::Key {
            id: None,
            scopes: Scopes::new(scopes.iter().copied()),
            agent_id: agent,
        }
    }

    #[test]
    fn only_a_create_only_key_bound_to_the_chat_agent_is_publishable() {
        let agent = AgentId::new_random();
        let chat = ChatSettings {
            agent_id: Some(agent),
            key: Some("k".to_owned()),
        };
        assert!(check_publishable(&chat, &key(&[Scope::SessionsCreate], Some(agent))).is_ok());
        for wrong in [
            key(&[Scope::SessionsCreate, Scope::SessionsRead], Some(agent)),
            key(&[Scope::SessionsCreate], None),
            key(&[Scope::SessionsCreate], Some(AgentId::new_random())),
            Caller::Open,
        ] {
            assert!(check_publishable(&chat, &wrong).is_err(), "{wrong:?}");
        }
        let unbound = ChatSettings {
            agent_id: None,
            key: Some("k".to_owned()),
        };
        let err = check_publishable(&unbound, &key(&[Scope::SessionsCreate], Some(agent)));
        assert!(err.unwrap_err().contains("AGENT_SESSIONS_CHAT_AGENT_ID"));
    }
}

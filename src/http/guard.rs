//! `require(scope)`: route middleware that authenticates the caller, checks
//! the scope and hands the caller (`Principal`) to the handler.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{web, HttpMessage};

use super::error::ApiError;
use super::extract;
use super::state::AppState;
use crate::identity::{IdentityError, Principal, Scope};

/// Middleware factory: the route needs `scope`.
pub fn require(scope: Scope) -> RequireScope {
    RequireScope { scope }
}

pub struct RequireScope {
    scope: Scope,
}

impl<S, B> Transform<S, ServiceRequest> for RequireScope
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireScopeMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireScopeMiddleware { service: Rc::new(service), scope: self.scope }))
    }
}

pub struct RequireScopeMiddleware<S> {
    service: Rc<S>,
    scope: Scope,
}

impl<S, B> Service<ServiceRequest> for RequireScopeMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let scope = self.scope;
        Box::pin(async move {
            // A refusal is an answer, not an error raised past the outer
            // middleware: they finish it like any other response.
            match authorize(&req, scope).await {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                    Ok(service.call(req).await?.map_into_left_body())
                }
                Err(refused) => Ok(req.error_response(refused).map_into_right_body()),
            }
        })
    }
}

/// The caller, if it holds `scope`.
async fn authorize(req: &ServiceRequest, scope: Scope) -> Result<Principal, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().cloned().ok_or_else(ApiError::internal)?;
    let principal = extract::authenticate(req.request(), &state).await?;
    if !principal.scopes.contains(scope) {
        return Err(IdentityError::InsufficientScope(scope).into());
    }
    Ok(principal)
}

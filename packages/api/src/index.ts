/**
 * @kvmlab/api — the kvmlab service's HTTP API, declared once with `HttpApi` and Schema: the
 * server implements it, and a typed client derives from it (`HttpApiClient.make(KvmlabApi, ...)`).
 */
export * as Api from "./Api.js"
export * as Schemas from "./Schemas.js"

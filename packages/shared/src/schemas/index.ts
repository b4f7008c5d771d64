// The API's shapes alone (zod only, nothing that talks to Redis or storage): `@imagegen/shared/schemas`,
// for clients such as the CLI that speak to the API over HTTP.
export * from './request';
export * from './generation';
export * from './batch';
export * from './delivery';
export * from './webhook-body';
export * from './api';
export * from './tenant';

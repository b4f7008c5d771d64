export { createApp } from './app';
export { apiEnvShape, loadApiConfig, parseApiKeys, type ApiConfig } from './config';
export { createApiContext, type ApiContext } from './context';
export { GenerationsService } from './services/generations';
export { answerClientErrors } from './http/client-error';

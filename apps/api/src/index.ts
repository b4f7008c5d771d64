export { createApp } from './app';
export { loadApiConfig, type ApiConfig } from './config';
export { createApiContext, type ApiContext } from './context';
export { GenerationsService } from './services/generations';

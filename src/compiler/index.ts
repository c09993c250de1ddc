export { type CompileResult, compile, type ResourceStatus } from './compile.ts';
export {
  indexEndpoints,
  resolveService,
  resolveUrls,
  serviceEndpointsKey,
  urlEndpointsKey,
} from './endpoints.ts';

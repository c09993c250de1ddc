export { KubeError, kubeRequest } from './kube-request.ts';
export { KubernetesSource, type KubernetesSourceOptions } from './kubernetes-source.ts';
export { type InformerState, ResilientInformer } from './resilient-informer.ts';

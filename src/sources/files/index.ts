/** The files source: manifests on disk as a ClusterState, once or kept up to date. */
export {
  ACCEPTED_KINDS,
  type LoadResult,
  loadFiles,
  loadFilesWithDigest,
  loadManifests,
  type ManifestText,
  type ManifestTree,
  type Origin,
  type SourceProblem,
  walkManifests,
} from './load.ts';
export { type FilesWatch, type WatchOptions, watchFiles } from './watch.ts';

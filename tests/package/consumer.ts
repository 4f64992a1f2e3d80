// A TypeScript project using the package: `tsc -p tests/package` type-checks it against the
// declarations scripts/package-web.mjs generates (tests/browser/package.test.mjs runs it), so
// that the declarations cannot drift from the API. Each @ts-expect-error is a call of the
// wrong shape, which must stay a type error.
import { Classifier, readReviews, type FineTuneProgress, type Prediction } from 'xinsheng';
import 'xinsheng/widget';

export async function use(file: File): Promise<string> {
  const clf = await Classifier.load({ backend: 'cpu', workers: 2 });
  const predictions: Prediction[] = await clf.classify(['质量很好'], { onProgress: ({ done, total }) => done / total });
  const top: number = predictions[0].probs[predictions[0].label];
  const reviews = await readReviews(file, { format: 'csv', textColumn: 'review' });
  const onProgress = (p: FineTuneProgress): string => p.loss.toFixed(3);
  const summary = await clf.fineTune(reviews.records.map((r) => ({ text: r.text, label: r.label ?? 'positive' })), { epochs: 2, lr: 1e-3, onProgress });
  const bytes: Uint8Array = await clf.exportModel({ precision: 'f32' });
  await clf.save('tuned');
  const again: Classifier | null = await Classifier.restore('tuned', { backend: 'auto' });
  await Classifier.load({ bytes });
  const tokens = await clf.explain('不差');
  return `${top} ${summary.labels.join()} ${again?.backend} ${tokens[0]?.token} ${clf.info.labels.length}`;
}

export async function wrong(clf: Classifier): Promise<void> {
  // @ts-expect-error a string is not the options object: Classifier.load({ modelUrl: '/my.bpk' })
  await Classifier.load('/my.bpk');
  // @ts-expect-error an unknown option
  await Classifier.load({ model: '/my.bpk' });
  // @ts-expect-error save needs a name
  await clf.save();
  // @ts-expect-error no such precision
  await clf.exportModel({ precision: 'f64' });
  // @ts-expect-error examples are {text, label}
  await clf.fineTune(['还行']);
  // @ts-expect-error the constructor is private: use Classifier.load
  new Classifier();
}

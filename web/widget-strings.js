// The `<sentiment-widget>`'s own words, by its `lang` attribute: the widget is a library and
// depends on nothing of the demo page (web/app/). Every key widget.js looks up exists in both
// languages (tests/browser/widget.test.mjs checks it).

/** The widget's strings; `{name}` is filled in when shown. */
export const WIDGET_STRINGS = {
  zh: {
    placeholder: '输入一条评论…',
    inputLabel: '评论文字',
    analyse: '分析',
    wrong: '不对？纠正为：',
    thanks: '谢谢，已标为{label}。',
    error: '出错：{message}',
    styleFailed: '无法加载组件样式 {url}：被内容安全策略（CSP）拦截或无法访问。',
  },
  en: {
    placeholder: 'Type a review…',
    inputLabel: 'Review text',
    analyse: 'Analyse',
    wrong: 'Wrong? Correct it:',
    thanks: 'Thanks — marked as {label}.',
    error: 'Error: {message}',
    styleFailed: "The widget's stylesheet {url} could not be loaded: blocked by a Content-Security-Policy, or unreachable.",
  },
};

/** How the widget shows the common label keys; other labels are shown as they are. */
export const LABEL_NAMES = {
  zh: { positive: '正面', negative: '负面', neutral: '中立' },
  en: { positive: 'positive', negative: 'negative', neutral: 'neutral' },
};

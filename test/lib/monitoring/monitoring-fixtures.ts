/** What the monitoring construct tests share: their functions' bundled code must be there, and template JSON is untyped. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';

/** Fails the test file, in words, when the monitoring functions were not bundled: synthesis would package nothing. */
export function requireMonitorAssets(): void {
  beforeAll(() => {
    for (const name of ['freshness-check', 'size-anomaly']) {
      if (!existsSync(join(__dirname, `../../../assets/lambda/${name}/index.js`))) {
        throw new Error(`the ${name} asset is missing: run 'npm run bundle' before these tests`);
      }
    }
  });
}

/** Template JSON is untyped. */
export type Json = ReturnType<Template['toJSON']>[string];
export type Resource = { Type: string; Properties: Json };

/** The template's alarms, by logical id. */
export const alarms = (template: Template) => Object.entries(template.findResources('AWS::CloudWatch::Alarm')) as [string, Resource][];

/** The one alarm whose logical id starts with `idPrefix`. */
export const alarmNamed = (template: Template, idPrefix: string): Resource => {
  const found = alarms(template).filter(([id]) => id.startsWith(idPrefix));
  if (found.length !== 1) throw new Error(`expected one alarm starting with ${idPrefix}, found ${found.length}`);
  return found[0][1];
};

/** An alarm description with its tokens (the bucket name) stood in for. */
export const description = (alarm: Resource): string => {
  const d = alarm.Properties.AlarmDescription;
  return typeof d === 'string' ? d : (d['Fn::Join'][1] as unknown[]).map((p) => (typeof p === 'string' ? p : 'BUCKET')).join('');
};

/** The widgets of the template's dashboard, its tokens stood in for. */
export const dashboardWidgets = (template: Template): { properties: Json }[] => {
  const [[, dashboard]] = Object.entries(template.findResources('AWS::CloudWatch::Dashboard')) as [string, Resource][];
  const joined = (dashboard.Properties.DashboardBody['Fn::Join'][1] as unknown[]).map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('');
  return JSON.parse(joined).widgets;
};

/** The sources the (first) freshness schedule hands the check. */
export const scheduleSources = (template: Template): unknown[] => {
  const [[, rule]] = Object.entries(template.findResources('AWS::Events::Rule')).filter(([id]) => id.startsWith('MonitoringFreshnessSchedule')) as [string, Resource][];
  return JSON.parse(rule.Properties.Targets[0].Input).sources;
};

import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import { AlarmTopic } from '../../../lib/monitoring/alarm-topic';

const ENV = { account: '123456789012', region: 'eu-west-1' };
const arnOf = (rest: string) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, rest]] });

describe('AlarmTopic policy: only this account\'s alarms and rules publish', () => {
  test('given an alarm topic, when synthesized, then CloudWatch may publish only for this account\'s alarms', () => {
    const stack = new Stack(new App(), 'Topic', { env: ENV });
    new AlarmTopic(stack, 'Alarms');

    Template.fromStack(stack).hasResourceProperties('AWS::SNS::TopicPolicy', { PolicyDocument: { Statement: Match.arrayWith([
      Match.objectLike({
        Sid: 'CloudWatchAlarmsPublish', Effect: 'Allow', Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: 'sns:Publish',
        Condition: {
          StringEquals: { 'aws:SourceAccount': ENV.account },
          ArnLike: { 'aws:SourceArn': arnOf(':cloudwatch:eu-west-1:123456789012:alarm:*') },
        },
      }),
    ]) } });
  });

  test('given a rule that targets the topic, when synthesized, then EventBridge may publish only for this account\'s rules', () => {
    const stack = new Stack(new App(), 'Topic', { env: ENV });
    const { topic } = new AlarmTopic(stack, 'Alarms');
    new events.Rule(stack, 'Rule', { eventPattern: { source: ['aws.backup'] } }).addTarget(new eventsTargets.SnsTopic(topic));

    const policies = Template.fromStack(stack).findResources('AWS::SNS::TopicPolicy');
    const statements = Object.values(policies).flatMap((policy) => policy.Properties.PolicyDocument.Statement as Array<Record<string, unknown>>);
    const eventBridge = statements.filter((statement) => JSON.stringify(statement.Principal).includes('events.amazonaws.com'));
    expect(eventBridge).toEqual([expect.objectContaining({
      Effect: 'Allow',
      Action: 'sns:Publish',
      Condition: {
        StringEquals: { 'aws:SourceAccount': ENV.account },
        ArnLike: { 'aws:SourceArn': arnOf(':events:eu-west-1:123456789012:rule/*') },
      },
    })]);
  });
});
